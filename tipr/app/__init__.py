"""The Gradio app (`python app.py`): search a gallery by a sentence, see GEA's generated image at work and
ECCA's completion of captionless images. Gradio is imported only by `tipr.app.ui`."""
