"""Live updates: the Socket.IO namespace browsers subscribe to."""
