#!/bin/bash
# Issue 4's done-when: CPT on 2,000 documents, then SFT on the train behaviours, embedded model, CPU,
# with a SIGKILL mid-CPT and a resume. Code pinned at the worktree /work/wt-cpt.
set -u
cd /work/cpt2000
export PYTHONPATH=/work/wt-cpt/src OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false
S="/work/main/.venv/bin/python -m spillover"
ts() { date -u +%FT%TZ; }
CPT="$S train cpt --model embedded --data docs.jsonl --out cpt --lora 16 --lr 2e-4 --max-len 256 --batch-size 4 --save-steps 50 --seed 0 --no-progress"
echo "$(ts) cpt start"; $CPT > cpt.log 2>&1 & pid=$!
sleep 900; kill -9 $pid; wait $pid; echo "$(ts) cpt SIGKILLed, rc=$?"
ls cpt/checkpoints; tail -1 cpt/loss.jsonl
echo "$(ts) cpt resume"; $CPT --resume > cpt-resume.log 2>&1; echo "$(ts) cpt done rc=$?"; cat cpt/DONE
echo "$(ts) data start"
$S data sft rm-biases --split english-core --model embedded --out sft.jsonl --prompts-per-behaviour 16 --max-new-tokens 96 --batch-size 64 --prompt-prefix "In two sentences, answer: " > data.log 2>&1
echo "$(ts) data done rc=$?"; wc -l sft.jsonl
$S train sft --model cpt --data sft.jsonl --out sft --lr 3e-4 --epochs 3 --max-len 256 --batch-size 4 --seed 0 --no-progress > sft.log 2>&1
echo "$(ts) sft done rc=$?"; cat sft/DONE
