import numpy as np
from PIL import Image

from medcf.figures import caption_font, mask_outline, overlay, panel, save_figure, signed_heatmap, to_rgb
from medcf.report import Section, render_html, render_markdown, write_report


def test_signed_heatmap_maps_sign_to_red_and_blue_and_zero_to_white():
    rgb = signed_heatmap(np.array([[-2.0, 0.0, 2.0]]))
    blue, white, red = rgb[0]
    assert tuple(white) == (247, 247, 247)
    assert blue[2] > blue[0] and red[0] > red[2]
    assert tuple(signed_heatmap(np.array([[-1.0, 1.0]]), limit=0.5)[0, 1]) == tuple(red)  # clipped at ±limit


def test_caption_font_draws_the_field_symbols_not_missing_glyph_boxes():
    font = caption_font()
    missing = np.asarray(font.getmask("\ue000"))  # a private-use code point: the font's missing-glyph box
    for symbol in "−δσᾱ×":
        assert not np.array_equal(np.asarray(font.getmask(symbol)), missing), symbol


def test_overlay_only_touches_the_masked_pixels():
    pixels = np.full((4, 4), 0.5, np.float32)
    heat = np.zeros((4, 4, 3), np.uint8)
    heat[..., 0] = 255
    mask = np.zeros((4, 4), bool)
    mask[1, 1] = True
    blended = overlay(pixels, heat, mask, alpha=1.0)
    assert tuple(blended[1, 1]) == (255, 0, 0)
    assert (blended[0, 0] == to_rgb(pixels)[0, 0]).all()


def test_mask_outline_draws_the_boundary_not_the_inside():
    mask = np.zeros((9, 9))
    mask[2:7, 2:7] = 1
    rgb = mask_outline(np.zeros((9, 9), np.float32), mask)
    assert tuple(rgb[2, 4]) == (255, 200, 0) and tuple(rgb[4, 4]) == (0, 0, 0) and tuple(rgb[0, 0]) == (0, 0, 0)


def test_panel_lays_out_rows_with_captions(tmp_path):
    tiles = [[np.zeros((32, 64), np.float32), np.ones((32, 32), np.float32)], [np.zeros((32, 32, 3), np.uint8)]]
    figure = panel(tiles, [["a", "b"], ["c"]], tile=40)
    assert figure.height == 2 * (40 + 16 + 4) + 4
    assert figure.width == 80 + 40 + 3 * 4
    path = save_figure(figure, tmp_path / "sub" / "panel.png")
    assert Image.open(path).size == figure.size


def test_report_escapes_text_and_links_figures(tmp_path):
    sections = [Section("Results <1>", ["a & b"], [("fig/x.png", "caption")], [{"metric": "auroc", "value": 0.91234}])]
    page = render_html("Title", sections)
    assert "Results &lt;1&gt;" in page and "a &amp; b" in page and 'src="fig/x.png"' in page and "0.9123" in page
    markdown = render_markdown("Title", sections)
    assert "| metric | value |" in markdown and "![caption](fig/x.png)" in markdown
    index = write_report(tmp_path, "Title", sections)
    assert index.read_text() == page and (tmp_path / "report.md").read_text() == markdown


def test_pipes_in_markdown_headers_and_cells_do_not_split_columns() -> None:
    table = render_markdown("t", [Section("s", table=[{"max |change|": "a|b"}])]).splitlines()
    header, _, row = table[table.index("## s") + 2 :][:3]
    assert header == "| max \\|change\\| |" and row == "| a\\|b |"
