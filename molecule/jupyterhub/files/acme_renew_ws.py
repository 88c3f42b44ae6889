"""Run in the target by test_acme.py with the hub's venv (tornado): a user's kernel is
driven over a websocket through nginx (https://hub.acme.test, verified against pebble's
root), the certificate is renewed by certbot.service (what certbot.timer runs) while
that websocket stays open, and the same websocket is used again. Prints JSON."""

import asyncio
import json
import ssl
import subprocess
import sys
import uuid

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

USER, TOKEN, ROOT = sys.argv[1:4]
BASE = f"https://hub.acme.test/user/{USER}/api"


def served_serial():
    """The serial of the certificate nginx serves to a new connection now."""
    pem = subprocess.run(
        "openssl s_client -connect 127.0.0.1:443 -servername hub.acme.test </dev/null 2>/dev/null",
        shell=True, capture_output=True, text=True, check=True,
    ).stdout
    return subprocess.run(
        ["openssl", "x509", "-noout", "-serial"], input=pem, capture_output=True, text=True, check=True
    ).stdout.strip()


async def execute(ws, code):
    msg_id = uuid.uuid4().hex
    await ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": USER, "session": "acme",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False},
    }))
    while True:
        message = await asyncio.wait_for(ws.read_message(), 60)
        if message is None:
            return f"websocket closed ({ws.close_code} {ws.close_reason})"
        if isinstance(message, bytes):
            continue
        reply = json.loads(message)
        if reply.get("parent_header", {}).get("msg_id") == msg_id and reply["msg_type"] == "execute_result":
            return reply["content"]["data"]["text/plain"]


async def main():
    context = ssl.create_default_context(cafile=ROOT)
    headers = {"Authorization": f"token {TOKEN}"}
    client = AsyncHTTPClient()
    response = await client.fetch(HTTPRequest(f"{BASE}/kernels", method="POST", body="{}", headers=headers,
                                              ssl_options=context))
    kernel = json.loads(response.body)["id"]
    ws = await websocket_connect(HTTPRequest(f"wss://hub.acme.test/user/{USER}/api/kernels/{kernel}/channels",
                                             headers=headers, ssl_options=context))
    result = {"before": served_serial(), "first": await execute(ws, "6 * 7")}
    renewal = subprocess.run(["systemctl", "start", "certbot.service"], capture_output=True, text=True)
    # nginx's reload is asynchronous: its new workers take over new connections shortly.
    for _ in range(50):
        after = served_serial()
        if after != result["before"]:
            break
        await asyncio.sleep(0.2)
    result.update(certbot_rc=renewal.returncode, certbot=renewal.stderr, after=after)
    result["second"] = await execute(ws, "6 * 8")
    ws.close()
    await client.fetch(HTTPRequest(f"{BASE}/kernels/{kernel}", method="DELETE", headers=headers,
                                   ssl_options=context), raise_error=False)
    print(json.dumps(result))


asyncio.run(main())
