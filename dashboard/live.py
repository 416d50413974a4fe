"""Socket.IO: the unbound extension; namespaces and live push live here (issue 3)."""
from flask_socketio import SocketIO

socketio = SocketIO()
