#!/usr/bin/env bash
# The README's "first hour" walkthrough as a script: a flat folder of photos with 0/255 masks ->
# check-data -> train with a seeded validation split and TensorBoard logs -> Ctrl-C -> --resume ->
# a second run beside the first -> a large, EXIF-rotated photo predicted in tiles.
# usage: bash scripts/first-hour.sh [WORK_DIR]      (default ./first-hour; it is replaced)
# env: FIRST_HOUR_SMALL=1 for a quicker run (the test suite's); PANSEG to run another CLI build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-first-hour}
PANSEG=${PANSEG:-node $root/dist/src/cli/main.js}
if [ "${FIRST_HOUR_SMALL:-0}" = 1 ]; then images=24; epochs=3; photo=1200x900; else images=80; epochs=16; photo=4000x3000; fi

panseg() { $PANSEG "$@"; }
say() { printf '\n$ panseg %s\n' "$*"; }

rm -rf "$work"
mkdir -p "$work"
cd "$work"

printf '$ node scripts/first-hour-data.mjs data --size 128\n'
node "$root/scripts/first-hour-data.mjs" data --images "$images" --size 128 --photo "$photo"

say check-data --dataset folder --data-root data --split all
panseg check-data --dataset folder --data-root data --split all

train=(train --dataset folder --data-root data --split all --val-fraction 0.2 --encoder resnet18 --crop 128 --batch-size 8 --threads 2)

# Ctrl-C once the first epoch's checkpoint and report are on disk, then resume.
say "${train[@]}" --epochs "$epochs" --log tensorboard --out runs/shapes "  (Ctrl-C after the first epoch)"
set -m # job control: a background job gets SIGINT like a foreground one (a script's background jobs ignore it)
panseg "${train[@]}" --epochs "$epochs" --log tensorboard --out runs/shapes &
pid=$!
set +m
for _ in $(seq 1 600); do
  [ -f runs/shapes/checkpoints/last/trainer.json ] && [ -f runs/shapes/report.html ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
kill -INT -- -"$pid" 2>/dev/null || true # the job's process group, as Ctrl-C signals it
status=0
wait "$pid" || status=$?
echo "^C  (exit status $status)"
ls runs/shapes

say "${train[@]}" --epochs "$epochs" --log tensorboard --out runs/shapes --resume
panseg "${train[@]}" --epochs "$epochs" --log tensorboard --out runs/shapes --resume

# A second run into the same folder is refused; it goes beside the first.
say "${train[@]}" --epochs "$epochs" --optimizer adamw --out runs/shapes
panseg "${train[@]}" --epochs "$epochs" --optimizer adamw --out runs/shapes || echo "(exit status $?)"
say "${train[@]}" --epochs "$epochs" --optimizer adamw --out runs/shapes-2 --quiet
panseg "${train[@]}" --epochs "$epochs" --optimizer adamw --out runs/shapes-2 --quiet
ls runs

say predict --model runs/shapes --out preds --tile 512 --overlap 0.25 big-photo.jpg
panseg predict --model runs/shapes --out preds --tile 512 --overlap 0.25 big-photo.jpg
ls preds
