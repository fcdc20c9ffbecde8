"""Past one machine: speech workers on a Ray cluster that the live calls' transcription pool sends turns
to, and the commands that join a cluster."""
