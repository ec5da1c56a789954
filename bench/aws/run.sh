#!/usr/bin/env bash
# bench/aws/run.sh - what the AWS client costs: API calls per preview
# lifecycle (open, push, stop, wake, close) against the minimum the steps
# need, and DescribeInstances per second through our C client (release
# build, one connection) against a bare boto3 loop doing the same calls
# against the same moto_server, in the same run. Not a pass/fail test.
#   bench/aws/run.sh [calls]
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s build/release/tests/tools/aws_run build/release/tests/tools/ec2_compute_run >/dev/null
exec python3 bench/aws/bench.py "$@"
