"""Pure computation on frames: interpreter loading, model specs, pre/post-processing, anchors, motion gate,
tracker. Imports no hub code and no hardware library; numpy (and the TFLite runtime) only, imported lazily
by the modules that need them."""
