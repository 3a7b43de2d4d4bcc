"""drp: the library behind the drug response prediction pipeline (data, splits, features, models, metrics)."""
