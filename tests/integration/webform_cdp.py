#!/usr/bin/env python3
"""Drives a headless Chromium over the DevTools protocol like a person: opens the
example form, types into the fields (Input.insertText, as an IME does for 王芳) and
clicks the submit button with the mouse. Prints the lead id the page shows.

usage: webform_cdp.py CDP_PORT PAGE_URL
Only the Python standard library: a minimal WebSocket client (RFC 6455, text frames,
client-side masking) is enough for the DevTools protocol."""
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.request


class Ws:
    def __init__(self, url):
        hostport, path = url[len("ws://"):].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                       .encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise RuntimeError("DevTools closed the connection during the handshake")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("WebSocket handshake refused: " + head.decode(errors="replace"))
        self.next_id = 0

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise RuntimeError("DevTools connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        payload = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload += self._read(n)
            if b0 & 0x80:
                return json.loads(payload)

    def call(self, method, **params):
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = self.recv()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")


def main():
    port, page = sys.argv[1], sys.argv[2]
    deadline = time.time() + 20
    targets = None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                targets = [t for t in json.load(r) if t.get("type") == "page"]
            if targets:
                break
        except OSError:
            pass
        time.sleep(0.2)
    if not targets:
        sys.exit("no Chromium page target on the DevTools port")
    ws = Ws(targets[0]["webSocketDebuggerUrl"])
    ws.call("Page.enable")
    ws.call("Page.navigate", url=page)
    while time.time() < deadline:
        if ws.eval("document.readyState === 'complete' && !!document.getElementById('submit')"):
            break
        time.sleep(0.1)
    else:
        sys.exit("the form page did not load")
    for field, text in (("name", "王芳"), ("phone", "138 0013 8000"),
                        ("company", "华东医疗器械有限公司"), ("budget", "50万"),
                        ("need", "想了解贵公司的设备，请尽快联系")):
        ws.eval(f"document.getElementById('{field}').focus()")
        ws.call("Input.insertText", text=text)
    box = ws.eval("(function(){var r=document.getElementById('submit')"
                  ".getBoundingClientRect();return [r.x+r.width/2, r.y+r.height/2];})()")
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        ws.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                clickCount=1)
    deadline = time.time() + 20
    while time.time() < deadline:
        lead = ws.eval("document.getElementById('result').dataset.leadId || ''")
        if lead:
            print(lead)
            return
        time.sleep(0.1)
    sys.exit("no lead id on the page; the page says: "
             + str(ws.eval("document.getElementById('result').textContent")))


if __name__ == "__main__":
    main()
