"""brainvis_hf.pipelines"""
