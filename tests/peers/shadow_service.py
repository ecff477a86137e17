"""A device shadow service on any MQTT broker, behaving as AWS IoT's Device
Shadow service documents it (paho-mqtt), for eddy's tests.

Serves classic and named shadows on the reserved topics
$aws/things/THING/shadow[/name/NAME]/get|update|delete, answering on
.../accepted and .../rejected, publishing .../update/delta when an update
with a desired section leaves desired and reported different, and
.../update/documents after every accepted update. Written from AWS's
documentation (Device Shadow service documents, MQTT topics, error
messages), not from eddy's code:

- an update needs a "state" object whose only members are "desired" and
  "reported", each an object or null; null removes a section, and inside a
  section null removes a field; objects merge field by field, anything
  else (arrays too) replaces the stored value; an object emptied by its
  fields' removal goes too;
- a "version" in an update must equal the shadow's (409 otherwise); each
  accepted update adds one to it;
- a clientToken is at most 64 bytes, a section nests at most 6 levels,
  desired and reported hold at most 8 KB together (400, 400, 413);
- the delta holds the desired fields whose value reported does not hold;
  inside objects only the differing fields; arrays compare whole.

Shadows are kept in STORE (JSON, rewritten on every change), so the service
can stop and start with the broker; tests read it to see the cloud side.
Every accepted update is also appended to STORE.log (the thing, the
update's state, the new version). As AWS's HTTP API does, updates can come
without MQTT: a file THING.json dropped into CONTROL holding an update
document is applied (and removed) even while the broker is down.
Writes READY once subscribed. Runs until stopped.

Usage: shadow_service.py PORT STORE READY [CONTROL]
"""

import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

MAX_STATE_BYTES = 8192
MAX_DEPTH = 6
MAX_TOKEN = 64


def now():
    return int(time.time())


def depth(value):
    if isinstance(value, dict):
        return max((1 + depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((1 + depth(v) for v in value), default=0)
    return 0


def apply(stored, update, meta, ts):
    """Merges update into stored (both dicts); meta gets a timestamp per
    leaf written."""
    for name, value in update.items():
        if value is None:
            stored.pop(name, None)
            meta.pop(name, None)
        elif isinstance(value, dict):
            inner = stored.get(name)
            if not isinstance(inner, dict):
                inner = {}
            inner_meta = meta.get(name)
            if not isinstance(inner_meta, dict) or "timestamp" in inner_meta:
                inner_meta = {}
            apply(inner, value, inner_meta, ts)
            if inner or not value:
                stored[name] = inner
                meta[name] = inner_meta
            else:
                stored.pop(name, None)
                meta.pop(name, None)
        else:
            stored[name] = value
            meta[name] = {"timestamp": ts}


def delta(desired, reported):
    out = {}
    for name, want in desired.items():
        have = reported.get(name) if isinstance(reported, dict) else None
        if isinstance(want, dict) and isinstance(have, dict):
            inner = delta(want, have)
            if inner:
                out[name] = inner
        elif name not in (reported or {}) or have != want:
            out[name] = want
    return out


def size(section):
    if not section:
        return 0
    return len(json.dumps(section, separators=(",", ":"), ensure_ascii=False).encode())


class Service:
    def __init__(self, client, store_path):
        self.client = client
        self.store_path = store_path
        self.shadows = {}
        if os.path.exists(store_path):
            with open(store_path) as f:
                self.shadows = json.load(f)

    def save(self):
        tmp = self.store_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.shadows, f)
        os.replace(tmp, self.store_path)

    def reply(self, prefix, suffix, doc):
        # While the broker is down the answer is lost, as it would be.
        self.client.publish(prefix + "/" + suffix, json.dumps(doc), qos=1)

    def error(self, prefix, op, code, message, token):
        doc = {"code": code, "message": message, "timestamp": now()}
        if token is not None:
            doc["clientToken"] = token
        self.reply(prefix, op + "/rejected", doc)

    def handle(self, topic, payload):
        parts = topic.split("/")
        # $aws/things/THING/shadow/OP or $aws/things/THING/shadow/name/NAME/OP
        if len(parts) == 5 and parts[3] == "shadow":
            key, op = parts[2], parts[4]
        elif len(parts) == 7 and parts[3] == "shadow" and parts[4] == "name":
            key, op = parts[2] + "/" + parts[5], parts[6]
        else:
            return
        if op not in ("get", "update", "delete"):
            return
        prefix = "/".join(parts[:-1])
        try:
            request = json.loads(payload.decode("utf-8")) if payload else {}
        except (ValueError, UnicodeDecodeError):
            self.error(prefix, op, 400, "Invalid JSON", None)
            return
        if not isinstance(request, dict):
            self.error(prefix, op, 400, "Invalid JSON", None)
            return
        token = request.get("clientToken")
        if token is not None and (not isinstance(token, str) or len(token.encode()) > MAX_TOKEN):
            self.error(prefix, op, 400, "Invalid clientToken", None)
            return
        name = parts[5] if len(parts) == 7 else parts[2]
        getattr(self, op)(key, name, prefix, request, token)

    def get(self, key, name, prefix, request, token):
        shadow = self.shadows.get(key)
        if shadow is None:
            self.error(prefix, "get", 404, "No shadow exists with name: '%s'" % name, token)
            return
        state = {}
        for section in ("desired", "reported"):
            if shadow["state"].get(section) is not None:
                state[section] = shadow["state"][section]
        d = delta(state.get("desired", {}), state.get("reported", {}))
        if d:
            state["delta"] = d
        doc = {"state": state, "metadata": shadow["metadata"],
               "version": shadow["version"], "timestamp": now()}
        if token is not None:
            doc["clientToken"] = token
        self.reply(prefix, "get/accepted", doc)

    def delete(self, key, name, prefix, request, token):
        shadow = self.shadows.pop(key, None)
        if shadow is None:
            self.error(prefix, "delete", 404, "No shadow exists with name: '%s'" % name, token)
            return
        self.save()
        doc = {"version": shadow["version"], "timestamp": now()}
        if token is not None:
            doc["clientToken"] = token
        self.reply(prefix, "delete/accepted", doc)

    def update(self, key, name, prefix, request, token):
        state = request.get("state")
        if "state" not in request:
            self.error(prefix, "update", 400, "Missing required node: state", token)
            return
        if not isinstance(state, dict):
            self.error(prefix, "update", 400, "State node must be an object", token)
            return
        for section, value in state.items():
            if section not in ("desired", "reported"):
                self.error(prefix, "update", 400, "State contains an invalid node", token)
                return
            if value is not None and not isinstance(value, dict):
                self.error(prefix, "update", 400,
                           "%s node must be an object" % section.capitalize(), token)
                return
            if value is not None and depth(value) > MAX_DEPTH:
                self.error(prefix, "update", 400,
                           "JSON contains too many levels of nesting; maximum is 6", token)
                return
        version = request.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            self.error(prefix, "update", 400, "Invalid version", token)
            return
        old = self.shadows.get(key)
        current = old["version"] if old else 0
        if version is not None and version != current:
            self.error(prefix, "update", 409, "Version conflict", token)
            return
        new = json.loads(json.dumps(old)) if old else {
            "state": {}, "metadata": {}, "version": 0}
        ts = now()
        for section, value in state.items():
            if value is None:
                new["state"].pop(section, None)
                new["metadata"].pop(section, None)
                continue
            stored = new["state"].setdefault(section, {})
            meta = new["metadata"].setdefault(section, {})
            apply(stored, value, meta, ts)
        if size(new["state"].get("desired")) + size(new["state"].get("reported")) > MAX_STATE_BYTES:
            self.error(prefix, "update", 413, "The payload exceeds the maximum size allowed", token)
            return
        new["version"] = current + 1
        self.shadows[key] = new
        self.save()
        with open(self.store_path + ".log", "a") as log:
            log.write(json.dumps({"thing": key, "state": state, "version": new["version"]}) + "\n")
        accepted = {"state": state, "metadata": {}, "version": new["version"], "timestamp": ts}
        for section, value in state.items():
            if isinstance(value, dict):
                accepted["metadata"][section] = new["metadata"].get(section, {})
        if token is not None:
            accepted["clientToken"] = token
        self.reply(prefix, "update/accepted", accepted)
        desired = new["state"].get("desired") or {}
        d = delta(desired, new["state"].get("reported") or {})
        if isinstance(state.get("desired"), dict) and d:
            doc = {"version": new["version"], "timestamp": ts, "state": d, "metadata": {}}
            if token is not None:
                doc["clientToken"] = token
            self.reply(prefix, "update/delta", doc)
        documents = {
            "previous": old and {"state": old["state"], "metadata": old["metadata"],
                                 "version": old["version"]},
            "current": {"state": new["state"], "metadata": new["metadata"],
                        "version": new["version"]},
            "timestamp": ts,
        }
        if token is not None:
            documents["clientToken"] = token
        self.reply(prefix, "update/documents", documents)


def main():
    port, store_path, ready_path = sys.argv[1:4]
    control = sys.argv[4] if len(sys.argv) > 4 else None
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="shadow-service",
                         protocol=mqtt.MQTTv311)
    client.reconnect_delay_set(min_delay=0.2, max_delay=0.2)
    service = Service(client, store_path)
    lock = threading.Lock()

    def on_connect(client, _userdata, _flags, reason, _properties):
        if reason.is_failure:
            return
        client.subscribe("$aws/things/+/shadow/#", qos=1)

    def on_subscribe(_client, _userdata, _mid, reasons, _properties):
        if all(not r.is_failure for r in reasons):
            with open(ready_path, "w") as f:
                f.write("ready")

    def on_message(_client, _userdata, message):
        with lock:
            service.handle(message.topic, message.payload)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    while True:
        try:
            client.connect("127.0.0.1", int(port), keepalive=5)
            break
        except OSError:
            time.sleep(0.2)
    client.loop_start()
    while True:
        time.sleep(0.1)
        if not control or not os.path.isdir(control):
            continue
        for name in sorted(os.listdir(control)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(control, name)
            with open(path, "rb") as f:
                payload = f.read()
            os.remove(path)
            thing = name[:-len(".json")]
            with lock:
                service.handle("$aws/things/%s/shadow/update" % thing, payload)


if __name__ == "__main__":
    main()
