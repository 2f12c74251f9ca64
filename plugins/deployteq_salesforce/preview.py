"""``python -m deployteq_salesforce.preview``: dry run of a changed Lead/Contact mapping (issue 13).

    python -m deployteq_salesforce.preview --object Lead --config candidate.json [--sample 200] [--json]
        [--salesforce-conn-id salesforce_default] [--deployteq-conn-id deployteq_default]

``candidate.json`` holds the candidate object config (one entry of the Variable
``deployteq_salesforce_objects``, or a whole ``{"objects": [...]}`` document).  Shows what the change would
do to the N most recently modified records, writing nothing; costs 3 Salesforce requests (describe,
sample, count), counted in the API budget.  Exit codes: 0 preview shown, 2 invalid config (the message
names the row or setting), 1 anything else (connection, budget).  Thin over ``flows/customers/preview.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from deployteq_salesforce.flows.customers.preview import (
    SAMPLE_DEFAULT,
    SAMPLE_MAX,
    InvalidCandidate,
    check_sample_size,
    format_text,
    parse_candidate,
    preview_on_connections,
)

EXIT_INVALID = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deployteq_salesforce.preview",
        description="Preview a changed Lead/Contact mapping on a sample of records; writes nothing (3 Salesforce requests).",
    )
    parser.add_argument("--object", required=True, choices=("Lead", "Contact"), help="the Salesforce object")
    parser.add_argument("--config", required=True, type=Path, help="JSON file with the candidate object config")
    parser.add_argument("--sample", type=int, default=SAMPLE_DEFAULT, help=f"records to sample (default {SAMPLE_DEFAULT}, at most {SAMPLE_MAX})")
    parser.add_argument("--json", action="store_true", help="print the preview as JSON")
    parser.add_argument("--salesforce-conn-id", default="salesforce_default")
    parser.add_argument("--deployteq-conn-id", default="deployteq_default")
    return parser


def _invalid(message: str, as_json: bool, out=None) -> int:
    if as_json:
        print(json.dumps({"valid": False, "error": message}, ensure_ascii=False, indent=2), file=out or sys.stdout)
    else:
        print(message, file=sys.stderr)
    return EXIT_INVALID


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; only the preview goes to standard output (Airflow's and the hooks' logging goes to
    standard error), so ``--json`` output can be piped."""
    args = _parser().parse_args(argv)
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)  # whatever logs to stdout (Airflow's structlog holds on to it) lands on stderr
    try:
        with os.fdopen(os.dup(result_fd), "w", encoding="utf-8") as out:
            return _main(args, out)
    finally:
        sys.stdout.flush()
        os.dup2(result_fd, 1)
        os.close(result_fd)


def _main(args: argparse.Namespace, out) -> int:
    try:
        check_sample_size(args.sample)
    except ValueError as exc:
        return _invalid(f"--sample: {exc}", args.json, out)
    try:
        raw = args.config.read_text(encoding="utf-8")
    except OSError as exc:
        return _invalid(f"cannot read {args.config}: {exc.strerror or exc}", args.json, out)
    try:
        obj = parse_candidate(raw, args.object)
    except InvalidCandidate as exc:
        return _invalid(str(exc), args.json, out)

    try:  # Airflow (connections) only once the config is known to be valid
        preview = preview_on_connections(obj, salesforce_conn_id=args.salesforce_conn_id,
                                         deployteq_conn_id=args.deployteq_conn_id, sample_size=args.sample)
    except InvalidCandidate as exc:
        return _invalid(str(exc), args.json, out)
    except Exception as exc:  # noqa: BLE001 - the CLI's answer: the reason, exit 1
        print(f"preview failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"valid": True, **preview.as_dict()}, ensure_ascii=False, indent=2), file=out)
    else:
        print(format_text(preview), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
