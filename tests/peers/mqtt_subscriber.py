"""An independent MQTT subscriber for eddy's tests (paho-mqtt).

Connects to the broker with a persistent session (MQTT 5, clean start off,
session expiry 1 hour), subscribes to a filter at QoS 1, and appends every
message it receives to OUT as a JSON line: its topic, its payload (parsed
JSON when it is), and its MQTT 5 user properties. When the broker goes
away it connects again every 200 ms, and the broker delivers what it
queued for the session meanwhile. Writes READY once the subscription is
acknowledged; runs until stopped.

Usage: mqtt_subscriber.py PORT CLIENT_ID FILTER OUT READY
"""

import json
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def main():
    port, client_id, topic_filter, out_path, ready_path = sys.argv[1:6]
    out = open(out_path, "a", buffering=1)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.reconnect_delay_set(min_delay=0.2, max_delay=0.2)

    def on_connect(client, _userdata, _flags, reason, _properties):
        if reason.is_failure:
            return
        client.subscribe(topic_filter, qos=1)

    def on_subscribe(_client, _userdata, _mid, reasons, _properties):
        if all(not r.is_failure for r in reasons):
            with open(ready_path, "w") as f:
                f.write("ready")

    def on_message(_client, _userdata, message):
        payload = message.payload.decode("utf-8", "replace")
        try:
            payload = json.loads(payload)
        except ValueError:
            pass
        props = getattr(message.properties, "UserProperty", None) or []
        out.write(json.dumps({"topic": message.topic, "payload": payload,
                              "user_properties": dict(props)}) + "\n")

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    while True:
        try:
            client.connect("127.0.0.1", int(port), keepalive=5, clean_start=False,
                           properties=properties)
            break
        except OSError:
            time.sleep(0.2)
    client.loop_forever(retry_first_connection=True)


if __name__ == "__main__":
    main()
