"""The Gradio app: Search, Behind GEA and Captionless images tabs; every action has an api_name."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import pandas as pd

from tipr.app.backend import Backend, BackendError
from tipr.app.search import METHODS, Hit

log = logging.getLogger("tipr.app")

EXAMPLE_QUERIES = [
    "A woman with long black hair wearing a red coat, blue jeans and white shoes, carrying a black handbag.",
    "A man in a white t-shirt and black shorts with a grey backpack.",
    "This person wears a green jacket over a yellow shirt, brown trousers and a black cap.",
    "A young woman in a blue dress with a white bag on her shoulder.",
]
# pedestrian crops are tall: give their gallery cells a 1:2 aspect instead of square
CSS = """
.tall-gallery .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(56px, 1fr)) !important;
                                grid-template-rows: none !important; grid-auto-rows: auto !important; }
.tall-gallery .thumbnail-item { aspect-ratio: 1 / 2 !important; }
.tall-gallery .grid-wrap { height: auto !important; min-height: 0 !important; max-height: 640px; }
.tall-gallery .caption-label { font-size: 0.75em; }
"""
RAW_UPLOADS_CACHE = (600, 3600)  # gradio deletes its raw upload copies older than an hour, every 10 minutes
NEIGHBOUR_COLUMNS = ["neighbour", "caption", "person id", "Jaccard distance", "FMC weight"]


def _user_errors():
    from tipr.app.completion import CompletionError
    from tipr.app.search import QueryError
    from tipr.app.uploads import UploadError

    return (QueryError, UploadError, CompletionError, BackendError)


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


def _warn(notes: list[str]) -> str:
    for note in notes:
        gr.Warning(note)
    return "\n".join(f"⚠️ {n}" for n in notes)


def _hit_caption(hit: Hit, extra: str = "") -> str:
    who = "yours" if hit.own else (f"id {hit.pid}" if hit.pid >= 0 else Path(hit.path).stem[:12])
    return f"#{hit.rank}{extra} · {hit.score:.2f} · {who}"


def _move_label(before: int, after: int) -> str:
    if before == after:
        return " ="
    arrow = "▲" if before > after else "▼"
    return f" {arrow}{abs(before - after)}"


def allowed_paths(config) -> list[str]:
    """Folders the app may serve images from: the gallery's root and the cache folder (uploads)."""
    paths = [str(Path(config.cache_dir).expanduser())]
    try:  # reading the captions file or annotation is quick; a saved index names its gallery's root
        from tipr.app.gallery import read_gallery

        paths.append(str(read_gallery(config.gallery)[0].root))
    except Exception:  # reported in the page once loading fails
        gallery = Path(config.gallery).expanduser()
        if gallery.exists():
            paths.append(str(gallery.resolve()))
    return paths


@contextmanager
def _examples_cache(config):
    """Cached examples live in a folder per (model, gallery, generator) so another gallery never sees them."""
    stamp = []
    for spec in (config.model, config.gallery, config.generator):
        path = Path(str(spec)) if spec else None
        if path is not None and path.exists():
            stamp.append(f"{path.resolve()}:{path.stat().st_mtime_ns}")
            stamp += [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(path.iterdir())
                      if path.is_dir() and p.is_file()]
        else:
            stamp.append(str(spec))
    key = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:16]
    before = os.environ.get("GRADIO_EXAMPLES_CACHE")
    if before is None:
        os.environ["GRADIO_EXAMPLES_CACHE"] = str(Path(config.cache_dir).expanduser() / "examples" / key)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GRADIO_EXAMPLES_CACHE", None)


def _captionless_choices(source) -> list[tuple[str, str]]:
    out = []
    for row in source.captionless:
        rel = Path(source.image_paths[row]).relative_to(source.root).as_posix()
        who = f" · person {source.image_pids[row]}" if source.image_pids[row] >= 0 else ""
        out.append((f"{rel}{who}", rel))
    return out


def build_demo(backend: Backend, config) -> gr.Blocks:
    """The three tabs, wired to ``backend`` (which loads in the background)."""
    from tipr.app.search import UserImages
    from tipr.app.uploads import UploadStore

    store = UploadStore(Path(config.cache_dir).expanduser() / "uploads", config.upload_limits)

    # ------------------------------------------------------------------------------ handlers
    @friendly
    def status():
        try:
            backend.wait(timeout=120)  # the page shows its own "loading" line meanwhile
        except BackendError:
            pass  # the status line itself says what failed
        return backend.status_markdown(), gr.Dropdown(choices=captionless_choices())

    def captionless_choices() -> list[tuple[str, str]]:
        if backend.ready and not backend.error:
            return _captionless_choices(backend.searcher.index.source)
        try:  # before the model is loaded: read the gallery's captions file or annotation, which is quick
            from tipr.app.gallery import read_gallery

            return _captionless_choices(read_gallery(config.gallery)[0])
        except Exception:  # the status line reports a bad gallery once loading fails
            return []

    def search_outputs(result, user_count: int = 0):
        gallery = [(h.path, _hit_caption(h)) for h in result.hits]
        note = _warn(result.notes)
        own = sum(h.own for h in result.hits)
        head = (f"**{METHODS[result.method]}**: top {len(result.hits)} of {len(backend.searcher.index)} gallery images"
                + (f" and your own images ({own} in these results)" if user_count else ""))
        return gallery, result.generated, "\n\n".join(x for x in (head, note) if x)

    @friendly
    def search(query, k, method, user):
        searcher = backend.wait()
        result = searcher.search(query, k=int(k), method=method or "text", user=user)
        return search_outputs(result, len(user) if user is not None else 0)

    @friendly
    def search_example(query, k, method):
        return search_outputs(backend.wait().search(query, k=int(k), method=method or "text"))

    @friendly
    def add_images(files, user):
        from tipr.data.images import read_image

        searcher = backend.wait()
        files = [getattr(f, "name", f) for f in (files or [])]
        paths, problems = store.add(files, held=len(user or ()))
        feats = searcher.encoder.images([read_image(p) for p in paths])
        user = (user or UserImages()).add([str(p) for p in paths], feats)
        note = _warn(problems)
        msg = f"Added {len(paths)} image(s); your own images: {len(user)}. They are searched with the gallery."
        return user, "\n\n".join(x for x in (msg, note) if x), None

    @friendly
    def clear_images(user):
        store.remove(getattr(user, "paths", ()))
        return UserImages(), "Your own images were removed."

    @friendly
    def behind_gea(query, seed, steps, k):
        searcher = backend.wait()
        cmp = searcher.compare(query, k=int(k), seed=int(seed), steps=int(steps), user=None)
        without = [(h.path, _hit_caption(h)) for h in cmp.without]
        with_ = [(h.path, _hit_caption(h, _move_label(before, h.rank))) for h, before in zip(cmp.with_, cmp.moves)]
        top0 = {h.row for h in cmp.without}
        entered = sum(h.row not in top0 for h in cmp.with_)
        moved = sum(before != h.rank for h, before in zip(cmp.with_, cmp.moves))
        table = pd.DataFrame({
            "rank with": [h.rank for h in cmp.with_],
            "rank without": cmp.moves,
            "change": [_move_label(b, h.rank).strip() + (f" (was #{b})" if b != h.rank else "")
                       for h, b in zip(cmp.with_, cmp.moves)],
            "image": [Path(h.path).name for h in cmp.with_],
            "person id": [h.pid for h in cmp.with_],
            "score with": [round(h.score, 4) for h in cmp.with_],
        })
        note = _warn(cmp.notes)
        summary = (f"The generated image changed {moved} of the top {len(cmp.with_)} positions; "
                   f"{entered} image(s) entered the top {len(cmp.with_)}.")
        return cmp.generated, without, with_, table, "\n\n".join(x for x in (summary, note) if x)

    @friendly
    def complete(choice, upload):
        from tipr.app.completion import CompletionError, complete_image
        from tipr.app.uploads import open_upload
        from tipr.data.images import read_image

        searcher = backend.wait()
        index = searcher.index
        src = index.source
        if upload:
            path = getattr(upload, "name", upload)
            image = open_upload(path, limits=store.limits)
            row, feature, label = None, searcher.encoder.images([image])[0], f"your image {Path(path).name}"
        elif choice:
            rows = {Path(p).relative_to(src.root).as_posix(): i for i, p in enumerate(src.image_paths)}
            if choice not in rows:
                raise CompletionError(f"{choice!r} is not an image of this gallery; pick one from the list")
            row = rows[choice]
            image = read_image(src.image_paths[row])
            feature, label = index.image_features[row], choice
        else:
            raise CompletionError("Pick a captionless gallery image from the list or upload an image.")
        ecca = getattr(searcher.encoder.model, "ecca_config", None)
        result = complete_image(index, feature, row=row, k=getattr(ecca, "k", 6), k_prime=getattr(ecca, "k_prime", 4),
                                probe_feature=lambda text: searcher.encoder.texts([text])[0])
        neighbours = pd.DataFrame({
            NEIGHBOUR_COLUMNS[0]: [f"#{i + 1}" for i in range(len(result.neighbours))],
            NEIGHBOUR_COLUMNS[1]: [src.captions[j] for j in result.neighbours],
            NEIGHBOUR_COLUMNS[2]: [src.caption_pids[j] for j in result.neighbours],
            NEIGHBOUR_COLUMNS[3]: [round(d, 3) for d in result.distances],
            NEIGHBOUR_COLUMNS[4]: [round(w, 4) for w in result.weights],
        })
        chart = neighbours[[NEIGHBOUR_COLUMNS[0], NEIGHBOUR_COLUMNS[4]]].rename(
            columns={NEIGHBOUR_COLUMNS[0]: "neighbour", NEIGHBOUR_COLUMNS[4]: "weight"})
        nearest = pd.DataFrame({"caption": [src.captions[j] for j, _ in result.nearest_captions],
                                "person id": [src.caption_pids[j] for j, _ in result.nearest_captions],
                                "cosine": [round(s, 4) for _, s in result.nearest_captions]})
        phrases = pd.DataFrame({"noun phrase": [p for p, _ in result.nearest_phrases],
                                "cosine": [round(s, 4) for _, s in result.nearest_phrases]})
        before, after = result.rank_without, result.rank_with
        arrow = "▲" if after < before else ("▼" if after > before else "=")
        summary = (f"**{label}** — its {result.probe_kind}: “{result.probe}”\n\n"
                   f"Rank for that caption among {result.gallery_size} images: **#{before}** with the image "
                   f"feature alone → **#{result.rank_with}** {arrow} with the completed text feature "
                   f"(image + completed text, normalised).")
        return image, summary, neighbours, chart, nearest, phrases

    # ------------------------------------------------------------------------------ layout
    with gr.Blocks(title="tipr: text-to-image person retrieval", delete_cache=RAW_UPLOADS_CACHE) as demo:
        gr.Markdown("# tipr — find a person by a sentence\nECCA and GEA text-to-image person retrieval "
                    "([docs](https://github.com/tipr-project/tipr)).")
        status_md = gr.Markdown(backend.status_markdown(), elem_id="status")
        user = gr.State(UserImages(), time_to_live=6 * 3600, delete_callback=lambda u: store.remove(u.paths))

        with gr.Tab("Search", id="search"):
            with gr.Row():
                query = gr.Textbox(label="Describe the person", lines=2, scale=4, max_length=5000,
                                   placeholder="a woman in a red coat and blue jeans carrying a black bag",
                                   elem_id="query")
                with gr.Column(scale=2):
                    k = gr.Slider(1, 50, value=10, step=1, label="Results (k)")
                    method = gr.Radio([(label, key) for key, label in METHODS.items()], value="text",
                                      label="Method")
            search_btn = gr.Button("Search", variant="primary", elem_id="search-button")
            search_md = gr.Markdown(elem_id="search-status")
            with gr.Row():
                results = gr.Gallery(label="Results: rank · score · person id", columns=10,
                                     object_fit="contain", scale=5, elem_classes=["tall-gallery"], elem_id="results")
                generated = gr.Image(label="GEA's generated image", type="pil", scale=1, height=300,
                                     interactive=False)
            with _examples_cache(config):
                gr.Examples([[q, 10, m] for q, m in zip(EXAMPLE_QUERIES, ["text", "gea", "gif", "text"])],
                            inputs=[query, k, method], outputs=[results, generated, search_md], fn=search_example,
                            cache_examples=True, cache_mode="lazy", api_name="search_example",
                            label="Example queries")
            with gr.Accordion("Search your own images", open=False):
                files = gr.File(label="Images or a zip of images", file_count="multiple", elem_id="own-files")
                with gr.Row():
                    add_btn = gr.Button("Add to my search", elem_id="add-button")
                    clear_btn = gr.Button("Remove my images")
                own_md = gr.Markdown()

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
            gea_md = gr.Markdown(elem_id="gea-status")
            with gr.Row():
                gea_image = gr.Image(label="Intermediate (generated) image", type="pil", height=384, scale=1,
                                     interactive=False)
                with gr.Column(scale=5):
                    gea_without = gr.Gallery(label="Text only", columns=10, object_fit="contain",
                                             elem_classes=["tall-gallery"], elem_id="gea-without")
                    gea_with = gr.Gallery(label="With the generated image (rank change)", columns=10,
                                          object_fit="contain", elem_classes=["tall-gallery"], elem_id="gea-with")
            gea_table = gr.Dataframe(label="Which results moved", interactive=False)

        with gr.Tab("Captionless images", id="captionless"):
            gr.Markdown("ECCA completes a missing caption in feature space: HSNG picks reliable neighbours among "
                        "the gallery's captions and FMC weighs them by affinity. Pick a gallery image that has no "
                        "caption, or upload one.")
            with gr.Row():
                pick = gr.Dropdown(choices=captionless_choices(), value=None, label="Captionless gallery image",
                                   allow_custom_value=True, scale=3, elem_id="pick")
                # no file_types: gradio's own check logs a traceback, the decoder names a non-image clearly
                upload = gr.File(label="…or upload an image", scale=2, height=110,
                                 elem_id="upload")
            complete_btn = gr.Button("Complete its text feature", variant="primary", elem_id="complete-button")
            with gr.Row():
                picked = gr.Image(label="Image", type="pil", height=300, scale=1, interactive=False)
                with gr.Column(scale=4):
                    complete_md = gr.Markdown(elem_id="complete-status")
                    weights_plot = gr.BarPlot(x="neighbour", y="weight", title="FMC affinity weights",
                                              y_lim=[0, 1], height=220, elem_id="weights")
            neighbours_df = gr.Dataframe(label="Neighbours chosen by HSNG among the gallery's captions",
                                         interactive=False, wrap=True,
                                         column_widths=["9%", "55%", "10%", "13%", "13%"])
            with gr.Row():
                nearest_df = gr.Dataframe(label="Captions nearest to the completed feature", interactive=False,
                                          wrap=True, scale=3, column_widths=["70%", "15%", "15%"])
                phrases_df = gr.Dataframe(label="Noun phrases nearest to the completed feature", interactive=False,
                                          scale=2)

        # -------------------------------------------------------------------------- events
        demo.load(status, None, [status_md, pick], api_name="status", concurrency_limit=None)
        search_args = dict(fn=search, inputs=[query, k, method, user], outputs=[results, generated, search_md])
        search_btn.click(**search_args, api_name="search")
        query.submit(**search_args, api_name="search_submit")
        add_btn.click(add_images, [files, user], [user, own_md, files], api_name="add_images")
        clear_btn.click(clear_images, [user], [user, own_md], api_name="clear_images")
        gea_args = dict(fn=behind_gea, inputs=[gea_query, seed, steps, gea_k],
                        outputs=[gea_image, gea_without, gea_with, gea_table, gea_md])
        gea_btn.click(**gea_args, api_name="behind_gea")
        gea_query.submit(**gea_args, api_name="behind_gea_submit")
        complete_args = dict(fn=complete, inputs=[pick, upload],
                             outputs=[picked, complete_md, neighbours_df, weights_plot, nearest_df, phrases_df])
        complete_btn.click(**complete_args, api_name="complete")
        pick.input(lambda choice: complete(choice, None), [pick], complete_args["outputs"], api_name="complete_pick")
        upload.upload(lambda file: complete(None, file), [upload], complete_args["outputs"],
                      api_name="complete_upload")
    return demo
