"""Trends for supervisors and agents: alerts per 100 calls, scorecard pass share and good practices, by
category, agent, team, day or week, over live and audited calls (:mod:`server.stats.aggregate`), the
routes and CSV (:mod:`server.stats.api`), and the scorecard of live calls once they end
(:mod:`server.stats.scoring`)."""
