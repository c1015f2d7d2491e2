"""redis-py with protocol=3 through the Drawbridge agent (run by resp3-clients.test.ts).

Usage: python resp3_client.py '<json: host, port, ca, cert, key>'
Prints one JSON object of what the client saw; the test asserts on it. Replies are read raw
(Connection.read_response, no command callbacks) where the RESP3 type itself is the point: a map
arrives as a dict and a double as a float, where RESP2 gives a flat list and a string.
"""

import json
import sys
import time

import redis

cfg = json.loads(sys.argv[1])


def client(**kw):
    return redis.Redis(
        host=cfg["host"],
        port=cfg["port"],
        ssl=True,
        ssl_ca_certs=cfg["ca"],
        ssl_certfile=cfg["cert"],
        ssl_keyfile=cfg["key"],
        socket_timeout=10,
        decode_responses=True,
        **kw,
    )


def plain(value):
    """JSON has no tuples, and keys are strings: maps are kept apart from lists as {"map": ...}."""
    if isinstance(value, dict):
        return {"map": {str(k): plain(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


out = {}
r = client(protocol=3)
writer = client(protocol=3)
conn = r.connection_pool.get_connection()


def raw(*args):
    conn.send_command(*args)
    return plain(conn.read_response())


r.delete("py:h", "py:s", "py:z", "py:l", "py:k")
r.hset("py:h", mapping={"a": "1", "b": "2"})
r.sadd("py:s", "x", "y")
r.zadd("py:z", {"m": 1.5, "n": 2.25})
r.rpush("py:l", "a", "b", "c")
out["hello"] = raw("HELLO")
out["hgetall"] = raw("HGETALL", "py:h")
out["smembers"] = raw("SMEMBERS", "py:s")
out["zscore"] = raw("ZSCORE", "py:z", "m")
out["zrange"] = raw("ZRANGE", "py:z", "0", "-1", "WITHSCORES")
out["lrange"] = raw("LRANGE", "py:l", "0", "-1")

# Pub/sub on the same connection as ordinary commands: the message push arrives between replies.
pushes = []
conn._parser.pubsub_push_handler_func = lambda push: pushes.append(plain(push))
conn.send_command("SUBSCRIBE", "py:ch")
conn.read_response(push_request=True)  # the confirmation, a push too: in `pushes`
writer.publish("py:ch", "hi")
time.sleep(0.2)
out["set_while_subscribed"] = raw("SET", "py:k", "v")
out["get_while_subscribed"] = raw("GET", "py:k")
out["pushes"] = list(pushes)
conn.send_command("UNSUBSCRIBE", "py:ch")
conn.read_response(push_request=True)

# HELLO 2 downgrades the same connection: the hash comes back as a flat list.
out["hello2"] = raw("HELLO", "2")
out["hgetall_resp2"] = raw("HGETALL", "py:h")
r.connection_pool.release(conn)

# Client tracking on the connection itself: a read key's invalidation after another client's write.
# (redis-py's own client-side cache wants Redis 7.4; the test server is 7.0, so tracking is driven by hand.)
tracker = client(protocol=3)
tracking = tracker.connection_pool.get_connection()
invalidated = []
tracking._parser.invalidation_push_handler_func = lambda push: invalidated.append(plain(push))
writer.set("py:tracked", "v1")
tracking.send_command("CLIENT", "TRACKING", "ON")
out["tracking_on"] = plain(tracking.read_response())
tracking.send_command("GET", "py:tracked")
out["tracked_read"] = plain(tracking.read_response())
writer.set("py:tracked", "v2")
time.sleep(0.2)
tracking.send_command("PING")
out["ping_after_write"] = plain(tracking.read_response())
out["invalidated"] = invalidated
tracker.connection_pool.release(tracking)

print(json.dumps(out))
