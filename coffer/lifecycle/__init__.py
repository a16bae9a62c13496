"""Background lifecycle passes: the bucket rules of coffer.storage.lifecycle executed through the
Engine API only (coffer/lifecycle/worker.py), so every engine gets them."""
