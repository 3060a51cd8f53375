"""Data pipeline: corpus -> documents of sentences -> WordPiece ids -> NSP/MLM examples -> padded masked batches.

Modules (imported on use, so `import bert2.data` stays cheap for the TUI's first frame):
    corpus       load_documents, split_documents, split_sentences, load_wiki_articles
    tokenizer    train_wordpiece, load_tokenizer, get_tokenizer (WordPiece trained on the corpus, or loaded)
    pretraining  prepare_pretraining_data -> PretrainingData(tokenizer, train, validation, info)
    collator     MLMCollator (dynamic padding + BERT 80/10/10 masking, resumable RNG; imports torch)
    hub          hub_reachable, hub_offline_mode (fail fast offline)
"""
