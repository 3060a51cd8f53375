"""The tasks bert2 trains, one module each, and what runs them; bert2/registry.py lists them by name.

pretraining.py   mlm+nsp, mlm    masked-language model (+ next-sentence prediction) on a corpus
classify.py      classify        one label per text
ner.py           ner             one BIO tag per word (named entities)
qa.py            qa              generative question answering
qa_span.py       qa-span         extractive question answering
base.py          what a task is, and what the fine-tuning tasks share
finetuning.py    run_finetuning: any fine-tuning task of the registry, start to end
run.py           the one run harness every training run uses
"""
