"""A local HTTP endpoint that records what webhooks POST to it (alert notifications)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    """`with WebhookReceiver() as hook:` then `hook.url`, `hook.received` (parsed JSON)."""

    def __init__(self):
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length) or b"null"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="webhook-receiver")

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def events(self) -> list[tuple[str, str]]:
        return [(r["alert"]["event"], r["alert"]["key"]) for r in self.received]


class SmtpReceiver:
    """A minimal SMTP server on localhost that keeps each message it is given (enough of
    the protocol for smtplib: EHLO, MAIL, RCPT, DATA, QUIT)."""

    def __init__(self):
        import socketserver

        self.messages: list[dict] = []
        messages = self.messages

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write((line + "\r\n").encode())

            def handle(self):
                self.reply("220 test SMTP")
                message = {"from": None, "to": [], "data": ""}
                while True:
                    line = self.rfile.readline().decode(errors="replace").strip()
                    verb = line.split(" ", 1)[0].upper()
                    if not line or verb == "QUIT":
                        self.reply("221 bye")
                        return
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 test")
                    elif verb == "MAIL":
                        message["from"] = line.split(":", 1)[1].strip()
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        message["to"].append(line.split(":", 1)[1].strip())
                        self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        lines = []
                        while (data := self.rfile.readline().decode(errors="replace")) \
                                not in (".\r\n", ""):
                            lines.append(data)
                        message["data"] = "".join(lines)
                        messages.append(dict(message))
                        self.reply("250 queued")
                    else:
                        self.reply("250 ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"smtp://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="smtp-receiver")

    def __enter__(self) -> "SmtpReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
