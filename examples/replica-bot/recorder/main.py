"""replica-bot's recorder: keep a record of each scaling, in SQLite.

stdin: a CloudEvent in structured mode, its data {"namespace", "deployment", "replicas",
"eventId", "eventTime"} (the request that caused it). One row per request: a delivery that comes
again (async delivery is at least once) replaces its row instead of adding one.
What it says goes to stderr, which is its log (stdout is the response).
"""
import datetime
import json
import os
import sqlite3
import sys


def main():
    event = json.load(sys.stdin)
    d = event.get("data") or {}
    db = sqlite3.connect(os.environ["DB_PATH"], timeout=10)
    with db:
        db.execute("""CREATE TABLE IF NOT EXISTS scaled (
            event_id TEXT PRIMARY KEY, event_time TEXT NOT NULL,
            namespace TEXT NOT NULL, deployment TEXT NOT NULL, replicas INTEGER NOT NULL,
            recorded_at TEXT NOT NULL)""")
        db.execute("INSERT OR REPLACE INTO scaled VALUES (?, ?, ?, ?, ?, ?)",
                   (d["eventId"], d["eventTime"], d["namespace"], d["deployment"], int(d["replicas"]),
                    datetime.datetime.now(datetime.timezone.utc).isoformat()))
    db.close()
    print(f"recorded {d['namespace']}/{d['deployment']} at {d['replicas']} for event {d['eventId']}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        sys.exit(f"replica-recorder: {e}")
