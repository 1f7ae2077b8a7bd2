"""brainvis_hf.training"""
