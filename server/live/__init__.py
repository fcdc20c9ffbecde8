"""Live calls: the protocol, call sessions, the transcription pool, the calls' store,
telephony adapters and the protocol client.
"""
