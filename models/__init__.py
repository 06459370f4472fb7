"""The model zoo: Keras models of the seed documents, their synthetic data and
their training.

``names()`` lists the zoo, ``get(name)`` returns a :class:`ZooEntry`, and
``train(name)`` trains one reproducibly. Importing this package does not
import TensorFlow; building and training do.
"""

from parity.models.registry import Dataset, Preset, ZooEntry, get, names
from parity.models.training import TrainResult, train, training_epochs

__all__ = [
    "Dataset",
    "Preset",
    "TrainResult",
    "ZooEntry",
    "get",
    "names",
    "train",
    "training_epochs",
]
