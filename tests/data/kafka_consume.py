"""Reads every record of a Kafka topic with confluent-kafka (a client that is not pinpipe's) and
prints them as one JSON list of {partition, offset, key, value} (key/value as UTF-8 text or null),
sorted by partition then offset. Usage: kafka_consume.py BOOTSTRAP TOPIC COUNT [TIMEOUT_S]."""
import json
import sys
import time

from confluent_kafka import Consumer, TopicPartition

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "pinpipe-test-python",
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
})
partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
consumer.assign([TopicPartition(topic, p, 0) for p in sorted(partitions)])
records = []
deadline = time.time() + timeout
while len(records) < count and time.time() < deadline:
    msg = consumer.poll(0.5)
    if msg is None:
        continue
    if msg.error():
        raise SystemExit(f"consume error: {msg.error()}")
    decode = lambda b: None if b is None else b.decode("utf-8")
    records.append({"partition": msg.partition(), "offset": msg.offset(), "key": decode(msg.key()),
                    "value": decode(msg.value())})
# Anything beyond `count` would be a duplicate: wait a little for it.
extra_deadline = time.time() + 1.0
while time.time() < extra_deadline:
    msg = consumer.poll(0.2)
    if msg is not None and not msg.error():
        records.append({"partition": msg.partition(), "offset": msg.offset(), "key": msg.key() and msg.key().decode(),
                        "value": msg.value() and msg.value().decode()})
consumer.close()
records.sort(key=lambda r: (r["partition"], r["offset"]))
print(json.dumps(records))
