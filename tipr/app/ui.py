"""The Gradio app's layout: Search, Behind GEA and Captionless images tabs; every action has an api_name.

What each action does lives in ``tipr.app.handlers``; this module binds them to the loaded backend, turns the
app's user errors into messages in the page, and lays the components out.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import gradio as gr

from tipr.app import handlers
from tipr.app.backend import Backend, BackendError
from tipr.app.search import QUERY_MODES, UserImages
from tipr.app.shown import ShownImages

log = logging.getLogger("tipr.app")

EXAMPLE_QUERIES = [
    "A woman with long black hair wearing a red coat, blue jeans and white shoes, carrying a black handbag.",
    "A man in a white t-shirt and black shorts with a grey backpack.",
    "This person wears a green jacket over a yellow shirt, brown trousers and a black cap.",
    "A young woman in a blue dress with a white bag on her shoulder.",
]
# pedestrian crops are tall: give their gallery cells a 1:2 aspect instead of square; captions wrap, never cut
CSS = """
.tall-gallery .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(56px, 1fr)) !important;
                                grid-template-rows: none !important; grid-auto-rows: auto !important; }
.tall-gallery .thumbnail-item { aspect-ratio: 1 / 2 !important; }
.tall-gallery .grid-wrap { height: auto !important; min-height: 0 !important; max-height: 640px; }
.tall-gallery .caption-label { font-size: 0.75em; left: 2px; right: 2px; bottom: 2px; max-width: none;
                               white-space: normal; overflow: visible; text-overflow: clip;
                               overflow-wrap: anywhere; line-height: 1.25; opacity: 0.9; }
"""
RAW_UPLOADS_CACHE = (600, 3600)  # gradio deletes its raw upload copies older than an hour, every 10 minutes


def _user_errors():
    from tipr.app.completion import CompletionError
    from tipr.app.gallery_source import GalleryError
    from tipr.app.search import QueryError
    from tipr.app.uploads import UploadError

    return (QueryError, UploadError, CompletionError, BackendError, GalleryError)


def friendly(fn):
    """Show the user a clear message for bad input or a failed load instead of a bare "Error"."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except _user_errors() as err:  # the user's mistake: one log line, no traceback
            log.info("%s refused: %s", fn.__name__, str(err)[:300])
            raise gr.Error(str(err), title="Cannot do that", print_exception=False) from None
        except Exception as err:
            log.exception("%s failed", fn.__name__)
            raise gr.Error(f"Something went wrong ({type(err).__name__}: {err}). The app is still running; "
                           f"try another input.") from None

    return wrapper


def served_folders(config) -> dict[str, Path]:
    """The app's folders under its cache: the images it has shown (the only folder served) and the sessions'
    own images (stored there, served through ``shown`` once they come up in a search)."""
    cache = Path(config.cache_dir).expanduser()
    return {"shown": cache / "shown", "uploads": cache / "uploads"}


def docs_link() -> str:
    """The docs of the app: on a Hugging Face Space its repository's docs/app.md, else the file's path."""
    space = os.environ.get("SPACE_ID")
    if space:
        return f"[docs](https://huggingface.co/spaces/{space}/blob/main/docs/app.md)"
    return "docs: `docs/app.md` in the repository"


def _gallery_source(backend: Backend, config):
    """The loaded gallery, or before loading (or after it failed) the gallery as read from disk, or None."""
    if backend.ready and not backend.error:
        return backend.searcher.index.source
    try:  # reading the captions file or annotation is quick
        from tipr.app.gallery import read_gallery

        return read_gallery(config.gallery)[0]
    except Exception:  # the status line reports a bad gallery once loading fails
        return None


def build_demo(backend: Backend, config) -> gr.Blocks:
    """The three tabs, wired to ``backend`` (which loads in the background)."""
    from tipr.app.uploads import UploadStore

    folders = served_folders(config)
    show = ShownImages(folders["shown"])
    store = UploadStore(folders["uploads"], config.upload_limits)  # removes what ended runs left
    gr.set_static_paths([str(show.root)])

    # ------------------------------------------------------------------------------ bindings
    def status():
        try:
            backend.wait(timeout=120)  # the page shows its own "loading" line meanwhile
        except BackendError:
            pass  # the status line itself says what failed
        source = _gallery_source(backend, config)
        choices = handlers.captionless_choices(source) if source is not None else []
        note = handlers.captionless_note(source) if source is not None else ""
        return backend.status_markdown(), gr.Dropdown(choices=choices), note

    @friendly
    def search(query, k, method, user):
        return handlers.search(backend.wait(), query, k, method, user, show=show)

    @friendly
    def search_example(query, k, method):
        return handlers.search(backend.wait(), query, k, method, show=show)

    @friendly
    def add_images(files, user):
        from tipr.app.uploads import UploadError

        try:
            paths = [getattr(f, "name", f) for f in (files or [])]
            user, message = handlers.add_images(backend.wait(), paths, user, store)
        except (UploadError, BackendError) as err:  # said once, next to the upload box; the box is emptied
            log.info("add_images refused: %s", str(err)[:300])
            return user, f"⚠️ Nothing was added: {err}", None
        return user, message, None

    def forget_user_images(user):
        show.forget(getattr(user, "paths", ()))
        store.remove(getattr(user, "paths", ()))

    @friendly
    def clear_images(user):
        forget_user_images(user)
        return UserImages(), "Your own images were removed."

    @friendly
    def behind_gea(query, seed, steps, k):
        return handlers.behind_gea(backend.wait(), query, seed, steps, k, show=show)

    @friendly
    def complete(choice, upload):
        return handlers.complete(backend.wait(), backend.ecca, choice, getattr(upload, "name", upload),
                                 store.limits)

    # ------------------------------------------------------------------------------ layout
    with gr.Blocks(title="tipr: text-to-image person retrieval", delete_cache=RAW_UPLOADS_CACHE) as demo:
        gr.Markdown("# tipr — find a person by a sentence\nECCA and GEA text-to-image person retrieval "
                    f"({docs_link()}).", elem_id="title")
        status_md = gr.Markdown(backend.status_markdown(), label="status", elem_id="status")
        user = gr.State(UserImages(), time_to_live=6 * 3600, delete_callback=forget_user_images)

        with gr.Tab("Search", id="search"):
            with gr.Row():
                query = gr.Textbox(label="Describe the person", lines=2, scale=4, max_length=5000,
                                   placeholder="a woman in a red coat and blue jeans carrying a black bag",
                                   elem_id="query")
                with gr.Column(scale=2):
                    k = gr.Slider(1, 50, value=10, step=1, label="Results (k)")
                    method = gr.Radio([(label, key) for key, label in QUERY_MODES.items()], value="text",
                                      label="Method")
            search_btn = gr.Button("Search", variant="primary", elem_id="search-button")
            search_md = gr.Markdown(label="search summary", elem_id="search-status")
            with gr.Row():
                results = gr.Gallery(label="Results: rank · score · person id", columns=10,
                                     object_fit="contain", scale=5, elem_classes=["tall-gallery"], elem_id="results")
                generated = gr.Image(label="GEA's generated image", type="pil", scale=1, height=300,
                                     interactive=False)
            # run on each click, not cached: gradio's example cache cannot read back an empty image (the
            # text-only examples generate none), and a text search takes milliseconds; generated images are
            # cached on disk by the generator
            gr.Examples([[q, 10, m] for q, m in zip(EXAMPLE_QUERIES, ["text", "gea", "gif", "text"])],
                        inputs=[query, k, method], outputs=[results, generated, search_md], fn=search_example,
                        run_on_click=True, cache_examples=False, api_name="search_example", label="Example queries")
            with gr.Accordion("Search your own images", open=False):
                files = gr.File(label="Images or a zip of images", file_count="multiple", elem_id="own-files")
                with gr.Row():
                    add_btn = gr.Button("Add to my search", elem_id="add-button")
                    clear_btn = gr.Button("Remove my images")
                own_md = gr.Markdown(label="own images summary", elem_id="own-status")

        with gr.Tab("Behind GEA", id="gea"):
            gr.Markdown("GEA turns the query into an intermediate image with a text-to-image model; the text "
                        "tokens then attend to that image's tokens (TGTE). Compare the ranking without and with it.")
            with gr.Row():
                gea_query = gr.Textbox(label="Describe the person", lines=2, scale=4, elem_id="gea-query")
                with gr.Column(scale=2):
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=2**31 - 1)
                    steps = gr.Slider(0, 50, value=0, step=1, label="Denoising steps (0: as in training)")
                    gea_k = gr.Slider(1, 30, value=10, step=1, label="Results (k)")
            gea_btn = gr.Button("Generate and compare", variant="primary", elem_id="gea-button")
            gea_md = gr.Markdown(label="comparison summary", elem_id="gea-status")
            with gr.Row():
                gea_image = gr.Image(label="Intermediate (generated) image", type="pil", height=384, scale=1,
                                     interactive=False)
                with gr.Column(scale=5):
                    gea_without = gr.Gallery(label="Text only", columns=10, object_fit="contain",
                                             elem_classes=["tall-gallery"], elem_id="gea-without")
                    gea_with = gr.Gallery(label="With the generated image (rank change)", columns=10,
                                          object_fit="contain", elem_classes=["tall-gallery"], elem_id="gea-with")
            gea_table = gr.Dataframe(handlers.empty_table(handlers.MOVE_COLUMNS), label="Which results moved",
                                     interactive=False, elem_id="gea-table")

        with gr.Tab("Captionless images", id="captionless"):
            source = _gallery_source(backend, config)
            gr.Markdown("ECCA completes a missing caption in feature space: HSNG picks reliable neighbours among "
                        "the gallery's captions and FMC weighs them by affinity. Pick a gallery image that has no "
                        "caption, or upload one.")
            pick_md = gr.Markdown(handlers.captionless_note(source) if source else "", label="captionless note",
                                  elem_id="captionless-note")
            with gr.Row():
                pick = gr.Dropdown(choices=handlers.captionless_choices(source) if source else [], value=None,
                                   label="Captionless gallery image",
                                   allow_custom_value=True, scale=3, elem_id="pick")
                # no file_types: gradio's own check logs a traceback, the decoder names a non-image clearly
                upload = gr.File(label="…or upload an image", scale=2, height=110,
                                 elem_id="upload")
            complete_btn = gr.Button("Complete its text feature", variant="primary", elem_id="complete-button")
            with gr.Row():
                picked = gr.Image(label="Image", type="pil", height=300, scale=1, interactive=False)
                with gr.Column(scale=4):
                    complete_md = gr.Markdown(label="completion summary", elem_id="complete-status")
                    weights_plot = gr.BarPlot(x="neighbour", y="weight", title="FMC affinity weights", label="FMC weights",
                                              show_label=False, y_lim=[0, 1], height=220, elem_id="weights")
            neighbours_df = gr.Dataframe(handlers.empty_table(handlers.NEIGHBOUR_COLUMNS), elem_id="neighbours",
                                         label="Neighbours chosen by HSNG among the gallery's captions",
                                         interactive=False, wrap=True,
                                         column_widths=["9%", "55%", "10%", "13%", "13%"])
            with gr.Row():
                nearest_df = gr.Dataframe(handlers.empty_table(handlers.NEAREST_COLUMNS), interactive=False,
                                          label="Captions nearest to the completed feature",
                                          wrap=True, scale=3, column_widths=["70%", "15%", "15%"])
                phrases_df = gr.Dataframe(handlers.empty_table(handlers.PHRASE_COLUMNS), interactive=False,
                                          label="Noun phrases nearest to the completed feature",
                                          scale=2)

        # -------------------------------------------------------------------------- events
        demo.load(status, None, [status_md, pick, pick_md], api_name="status", concurrency_limit=None)
        # searches and completions take milliseconds; generations and uploads take seconds and have their own
        # slots, so a crowd of searches never waits behind them (their queue position shows in the page)
        search_args = dict(fn=search, inputs=[query, k, method, user], outputs=[results, generated, search_md],
                           concurrency_id="search", show_progress="full")
        search_btn.click(**search_args, api_name="search")
        query.submit(**search_args, api_name="search_submit")
        add_btn.click(add_images, [files, user], [user, own_md, files], api_name="add_images", concurrency_id="upload",
                      concurrency_limit=1)
        clear_btn.click(clear_images, [user], [user, own_md], api_name="clear_images", concurrency_id="search")
        gea_args = dict(fn=behind_gea, inputs=[gea_query, seed, steps, gea_k],
                        outputs=[gea_image, gea_without, gea_with, gea_table, gea_md], concurrency_id="generate",
                        concurrency_limit=1, show_progress="full")
        gea_btn.click(**gea_args, api_name="behind_gea")
        gea_query.submit(**gea_args, api_name="behind_gea_submit")
        complete_outputs = [picked, complete_md, neighbours_df, weights_plot, nearest_df, phrases_df]
        complete_btn.click(complete, [pick, upload], complete_outputs, api_name="complete", concurrency_id="search")
        pick.input(lambda choice: complete(choice, None), [pick], complete_outputs, api_name="complete_pick",
                   concurrency_id="search")
        upload.upload(lambda file: complete(None, file), [upload], complete_outputs, api_name="complete_upload",
                      concurrency_id="search")
    return demo
