"""The cuda backend (``backend="cuda"``): the same equations as CUDA kernels on a GPU.

`target` finds Numba's CUDA target (the ``gpu`` extra) and the GPU, `kernels` holds one
kernel per equation, and `engine` keeps a network's buffers on the device, orders the
launches and trains (`engine.CudaTrainer`). Importing this package imports no CUDA
package; `target` does that at first use.
"""
