"""The loops backend (``backend="loops"``): the derivation as Numba loops on the CPU.

From the bottom up: the host's vector width and register tile (`simd`), when threads may
run (`threads`), the activations as row kernels (`activation_rows`), the kernels of the
three contractions (`kernels`, the seed's loop nests; `tiled_kernels`, `packed_kernels`,
`narrow_kernels`), the plan that chooses among them (`plan`), the scratch and the
buffers of a call (`scratch`, `workspace`), the loop over the layers (`layer_loop`), the
training loop (`training_loop`), the compiled entry points (`driver`, `serial_driver`),
which of them runs while the fast one compiles (`warming`), and the `engine` that the
public API calls.
"""
