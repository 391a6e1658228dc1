"""`sentinai nats-users`: make the NATS users, render them for Kubernetes, run the admin step.

``generate`` writes a credentials file per user and ``auth.conf`` (the server's authorization block)
into a folder (compose mounts them as secrets); ``k8s`` prints them as Secrets for ``kubectl apply``
(``nats-auth`` for the server, ``nats-creds-<user>`` for each pod); ``provision`` creates the streams
and the KV bucket as ``admin``. Existing credentials are always kept: rotating a user is deleting its
file and running ``generate`` (or ``k8s``) again. Also runnable as ``python -m sentinai.cli.natsusers``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from nats.errors import Error as NatsError

from sentinai.cli import stack
from sentinai.common import natsauth, streams

NAMESPACE = "sentinai"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (credentials, the authorization block) as readable ``|`` blocks."""


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _text)


def secret(name: str, data: dict[str, str], *, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "sentinai"},
        },
        "type": "Opaque",
        "stringData": data,
    }


def k8s_secrets(directory: Path, *, namespace: str = NAMESPACE, bucket: str = "sentinai") -> str:
    """Every Secret the manifests mount: the server's users (public keys) and one per user's creds."""
    users = natsauth.generate(directory, bucket=bucket)
    docs = [
        secret(
            "nats-auth",
            {natsauth.AUTH_CONFIG: natsauth.authorization_block(users, bucket=bucket)},
            namespace=namespace,
        )
    ]
    docs += [
        secret(f"nats-creds-{user}", {f"{user}.creds": creds.render()}, namespace=namespace)
        for user, creds in users.items()
    ]
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def add_parser(sub: Any) -> None:
    users = sub.add_parser(
        "nats-users", help="NATS users and permissions: generate, render for Kubernetes, provision"
    )
    actions = users.add_subparsers(dest="nats_action", required=True)
    generate = actions.add_parser("generate", help="a credentials file per user and auth.conf, in a folder")
    generate.add_argument("--dir", required=True, type=Path, help="folder (created 0700; files 0600)")
    generate.add_argument("--bucket", default="sentinai", help="the KV bucket (SENTINAI_KV_BUCKET)")
    k8s = actions.add_parser("k8s", help="the Kubernetes Secrets (nats-auth, nats-creds-<user>) as YAML")
    k8s.add_argument("--dir", required=True, type=Path, help="where the credentials are kept (reused)")
    k8s.add_argument("--out", type=Path, help="write the YAML here (0600) instead of standard output")
    k8s.add_argument("--namespace", default=NAMESPACE)
    k8s.add_argument("--bucket", default="sentinai", help="the KV bucket (SENTINAI_KV_BUCKET)")
    provision = actions.add_parser("provision", help="create the streams and the KV bucket as the admin user")
    provision.add_argument("--nats-url", help="default: the running stack's (up.json)")
    provision.add_argument("--creds", type=Path, help="the admin's credentials (default: the stack's)")
    provision.add_argument("--tls-ca", type=Path, help="CA of the server's certificate (tls:// URLs)")
    provision.add_argument("--bucket", default="sentinai", help="the KV bucket (SENTINAI_KV_BUCKET)")
    provision.add_argument("--partitions", type=int, help="detector partitions TELEMETRY is made for")
    provision.add_argument("--replicas", type=int, help="JetStream servers holding each stream")


def command(args: argparse.Namespace) -> int:
    try:
        if args.nats_action == "generate":
            natsauth.generate(args.dir, bucket=args.bucket)
            print(
                f"NATS users in {args.dir}: {', '.join(natsauth.USERS)} (.creds) and {natsauth.AUTH_CONFIG}"
            )
            return 0
        if args.nats_action == "k8s":
            text = k8s_secrets(args.dir, namespace=args.namespace, bucket=args.bucket)
            if args.out is None:
                sys.stdout.write(text)
            else:
                _write_private(args.out, text)
                print(f"Secrets written to {args.out}: kubectl apply -f {args.out}")
            return 0
        return _provision(args)
    except natsauth.CredentialsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _provision(args: argparse.Namespace) -> int:
    runtime = stack.Runtime.load(stack.runtime_file(Path(getattr(args, "state_dir", ".state"))))
    url = args.nats_url or (runtime.nats_url if runtime is not None else None)
    creds = args.creds or (runtime.admin_creds if runtime is not None else None)
    if url is None:
        print("error: no --nats-url and no running stack (up.json)", file=sys.stderr)
        return 2
    try:
        asyncio.run(
            natsauth.provision(
                url,
                creds=creds,
                tls_ca=args.tls_ca,
                bucket=args.bucket,
                partitions=args.partitions,
                replicas=args.replicas,
            )
        )
    except (streams.ProvisioningError, NatsError, TimeoutError, OSError) as exc:
        print(f"provisioning failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"streams and KV bucket {args.bucket!r} ready at {url}")
    return 0


def main(argv: list[str] | None = None) -> int:
    root = argparse.ArgumentParser(prog="sentinai")
    root.add_argument("--state-dir", default=".state", help="runtime state folder")
    add_parser(root.add_subparsers(dest="command", required=True))
    return command(root.parse_args(["nats-users", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
