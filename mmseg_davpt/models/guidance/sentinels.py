"""Sentinel ids of the metric guidance, one meaning per name."""

#: A token or image without a usable class (ignore index, background, padding,
#: or no class present in the image).
NO_CLASS = -1

#: A class without a prompt (not seen yet, or a class-free target).
NO_PROMPT = -1
