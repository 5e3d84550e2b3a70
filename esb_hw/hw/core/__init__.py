"""The compute core: dot-product rows and the PE array (buffers, requantization and control come next)."""
