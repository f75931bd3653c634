"""Small shared jobs every layer needs: run folders, atomic writes, hashes, seeds, YAML lines.

Nothing here imports another ``synthbias`` module except :mod:`synthbias.core` itself, so any
layer may import it without creating an import cycle.
"""
