"""replica-bot's scaler: scale a Kubernetes Deployment, then say so as an event.

stdin: a CloudEvent in structured mode, its data {"namespace", "deployment", "replicas"}.
Secrets (files in $NIMBUS_SECRETS_DIR): kube-server (https://HOST:PORT), kube-token (a
ServiceAccount token allowed to update deployments/scale), kube-ca (the API server's CA).
A failure exits non-zero: nimbus answers 500 and the async delivery is retried.
What it says goes to stderr, which is its log (stdout is the response).
"""
import json
import os
import ssl
import sys
import urllib.request


def secret(name):
    with open(os.path.join(os.environ["NIMBUS_SECRETS_DIR"], name)) as f:
        return f.read().strip()


def main():
    event = json.load(sys.stdin)
    data = event.get("data") or {}
    ns, name, replicas = data.get("namespace", "default"), data.get("deployment"), data.get("replicas")
    if not name or not isinstance(replicas, int) or replicas < 0:
        # Malformed requests are not retried into a dead letter: say why and succeed.
        print(f"ignored event {event.get('id')}: want data {{deployment, replicas >= 0}}, got {data!r}", file=sys.stderr)
        return
    ctx = ssl.create_default_context(cadata=secret("kube-ca"))
    url = f"{secret('kube-server')}/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale"
    req = urllib.request.Request(url, method="PATCH",
                                 data=json.dumps({"spec": {"replicas": replicas}}).encode(),
                                 headers={"Authorization": "Bearer " + secret("kube-token"),
                                          "Content-Type": "application/merge-patch+json"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        scale = json.load(resp)
    print(f"scaled {ns}/{name} to {scale['spec']['replicas']} for event {event['id']}", file=sys.stderr)
    # Binary-mode CloudEvent: the attributes are headers, the data the body.
    done = urllib.request.Request(os.environ["EVENTS_URL"], method="POST",
                                  data=json.dumps({"namespace": ns, "deployment": name, "replicas": replicas,
                                                   "eventId": event["id"], "eventTime": event.get("time", "")}).encode(),
                                  headers={"ce-specversion": "1.0", "ce-type": "replicas.scaled",
                                           "ce-source": "/replica-bot/scaler", "ce-id": event["id"] + "/scaled",
                                           "Content-Type": "application/json"})
    with urllib.request.urlopen(done, timeout=10) as resp:
        if resp.status >= 300:
            sys.exit(f"the events API answered {resp.status}")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # any failure: a 500, and nimbus retries the delivery
        sys.exit(f"replica-scaler: {e}")
