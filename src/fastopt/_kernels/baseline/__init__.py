"""Kernel modules compiled for one instruction set (see setup.py); loaded by fastopt._kernels."""
