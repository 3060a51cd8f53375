"""The Tasks the trainer drives, and their entry points: pretraining.py (MLM + NSP, `run_pretraining`) and
finetuning.py (classify, qa, qa-span, `run_finetuning`). Their data lives beside them in name:
data/pretraining.py and data/finetuning.py."""
