"""Modelling code shipped beside an exported ALiBi model, so transformers loads it with `trust_remote_code=True`.

transformers' BERT has only the learned position table; bert2's default models add ALiBi's per-head distance
penalty inside attention. These two files are copied next to the weights (transformers' custom-model convention:
`auto_map` in config.json names the classes); they use transformers' own BERT modules and change one thing: the
attention mask BertModel hands its layers carries the ALiBi bias. Nothing in bert2 imports them at run time.
"""
