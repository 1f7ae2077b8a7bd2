"""The applications built on the library: ``brainvis demo`` (:mod:`.demo`), its HTML report page
(:mod:`.demo_report`) and the ``brainvis generate`` folder writer (:mod:`.generate_folder`).

The library never imports this package (tests/test_import_graph.py); only ``brainvis_hf.cli`` and
the apps themselves do.
"""
