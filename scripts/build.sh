#!/usr/bin/env bash
# The main job: set everything up, synthesize every environment into cdk.out/ (cdk-nag
# gates synthesis), then check the templates and print the summary.
#   bash scripts/build.sh                # all environments
#   bash scripts/build.sh -c env=dev     # extra arguments go to `cdk synth`
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
rm -rf cdk.out
start=$(date +%s%N)
cdk synth --quiet --no-notices "$@"
echo "cdk synth: $(( ($(date +%s%N) - start) / 1000000 )) ms wall"
python -m compliance.report cdk.out
