"""Publishes numbered readings for eddy's tests (paho-mqtt, QoS 1).

Sends COUNT messages, one every INTERVAL_MS, each to
site/s1/rack/r{n % 3}/temp with the payload
{"seq": n, "env": {"temperature": t}}, and first one that is not JSON to
site/s1/rack/r0/temp, waiting for the broker's acknowledgement of each,
then writes DONE.

Usage: mqtt_publisher.py PORT COUNT INTERVAL_MS DONE
"""

import json
import sys
import time

import paho.mqtt.client as mqtt


def main():
    port, count, interval_ms, done = sys.argv[1:5]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="readings-publisher",
                         protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", int(port), keepalive=10)
    client.loop_start()
    client.publish("site/s1/rack/r0/temp", "{broken", qos=1).wait_for_publish(timeout=10)
    for n in range(int(count)):
        payload = json.dumps({"seq": n, "env": {"temperature": 20.0 + n / 10}})
        info = client.publish(f"site/s1/rack/r{n % 3}/temp", payload, qos=1)
        info.wait_for_publish(timeout=10)
        time.sleep(int(interval_ms) / 1000)
    client.loop_stop()
    client.disconnect()
    with open(done, "w") as f:
        f.write("done")


if __name__ == "__main__":
    main()
