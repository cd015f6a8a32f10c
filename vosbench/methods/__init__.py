"""The method interfaces and the registry. Which methods exist is decided by entry points."""
from vosbench.methods.base import (InteractiveMethod, Method, SemiSupervisedMethod, UnsupervisedMethod,
                                   Video)
from vosbench.methods.registry import available_methods, get_method, load_method

__all__ = ["Method", "SemiSupervisedMethod", "UnsupervisedMethod", "InteractiveMethod", "Video",
           "available_methods", "get_method", "load_method"]
