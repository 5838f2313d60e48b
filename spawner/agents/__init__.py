"""What runs on GPU nodes, apart from the hub: the readings collector (:mod:`.collect`) and the
save job (:mod:`.savejob`). They import only :mod:`gpulab.core` of gpulab (a unit test keeps it so)."""
