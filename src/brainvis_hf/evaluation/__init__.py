"""brainvis_hf.evaluation"""
