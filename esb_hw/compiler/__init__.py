"""From integer layers to what the hardware consumes: packed PE-array beats and their expected results."""
