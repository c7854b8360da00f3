#!/usr/bin/env bash
# Regenerates the example utterances with espeak-ng (apt-get install espeak-ng): synthetic speech
# the project makes itself, so README commands never need a corpus file. Output: 22.05 kHz mono WAV.
set -euo pipefail
cd "$(dirname "$0")"
espeak-ng -v en-us -s 150 -w english.wav "I can't believe you did that again. This is the third time this week."
espeak-ng -v cmn -s 150 -w chinese.wav "你怎么又这样做了？这是第三次了。"
