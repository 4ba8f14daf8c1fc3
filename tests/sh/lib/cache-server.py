#!/usr/bin/python3
"""A small HTTP/1.1 file server for binary cache tests, with faults.

  cache-server.py DIR PORTFILE LOGFILE [RULE...]

Serves DIR on 127.0.0.1 (a free port, written to PORTFILE once listening),
GET and HEAD, keep-alive, many connections at once.  Every request line is
appended to LOGFILE.  RULEs, tried in order, change the answer for request
paths containing a string:

  SUBSTR=CODE     answer with that HTTP status (and a one-line body)
  SUBSTR=stall    send nothing, keep the connection open
  SUBSTR=slow     send the headers and then the body one byte per second
"""
import http.server
import os
import sys
import threading
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def rule(self):
        for r in RULES:
            sub, _, action = r.rpartition("=")
            if sub in self.path:
                return action
        return None

    def answer(self, head):
        with LOCK:
            with open(LOG, "a") as f:
                f.write("%s %s\n" % (self.command, self.path))
        action = self.rule()
        if action == "stall":
            time.sleep(3600)
            return
        if action and action.isdigit():
            body = b"refused by the test server\n"
            self.send_response(int(action))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        path = os.path.join(DIR, self.path.lstrip("/").split("?")[0])
        if ".." in self.path or not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(path, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if head:
            return
        if action == "slow":
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(1)
        else:
            self.wfile.write(data)

    def do_GET(self):
        self.answer(False)

    def do_HEAD(self):
        self.answer(True)


DIR, PORTFILE, LOG = sys.argv[1:4]
RULES = sys.argv[4:]
LOCK = threading.Lock()
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
server.serve_forever()
