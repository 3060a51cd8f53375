"""The four screens (Config, Train, Checkpoints, Playground) and the modal dialogs."""
