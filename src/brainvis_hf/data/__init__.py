"""brainvis_hf.data"""
