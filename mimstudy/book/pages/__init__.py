"""One module per book page, named after it (section3: the template of the five Section 3 / Appendix A pages)."""
