"""The host interface: AXI4-Lite registers (:mod:`.registers`) and an AXI4 master (:mod:`.axi`)."""
