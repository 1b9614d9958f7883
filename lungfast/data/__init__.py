"""Stage 1, data: class folders -> readable images with tile groups -> one split per (scheme, split seed)
-> the uint8 tile store -> fastai DataLoaders. Also the synthetic tissue-like tiles of the demo and the tests."""
