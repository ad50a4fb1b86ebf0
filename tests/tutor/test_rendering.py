"""Reply Markdown to HTML: maths kept for KaTeX, multiplication never emphasis."""

from tutor.rendering import render_markdown


def test_maths_is_kept_out_of_markdown_for_katex():
    html = render_markdown("Solve $3x*2 = 12$ and\n\n$$\\frac{a*b}{c}$$")
    assert '<span class="math inline">3x*2 = 12</span>' in html
    assert '<div class="math block">' in html and "\\frac{a*b}{c}" in html
    assert "<em>" not in html


def test_a_star_between_operands_is_multiplication_not_emphasis():
    assert render_markdown("(10*y) * y - x = 20*y") == "<p>(10*y) * y - x = 20*y</p>\n"
    assert "<strong>bold</strong>" in render_markdown("a **bold** word")
    assert "<em>this</em>" in render_markdown("stress *this* word")
    assert "<code>a*b*c</code>" in render_markdown("`a*b*c`")
    assert "$5 and $6" in render_markdown("It costs $5 and $6.")  # dollar amounts are not maths
    assert render_markdown('<span class="math inline">x</span>').startswith("<p>&lt;span")  # raw HTML stays text
