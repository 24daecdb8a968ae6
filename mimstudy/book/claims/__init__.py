"""The verdict rules: one module per rule (verdicts, statistics, reductions, floors, gates), the evidence a
verdict reads (evidence), the registry of claims and the pre-registration, and one module per claim family
(probes: Section 3 and Appendix A; sweep; convnet: Appendix B; downstream, geometric, semantic, combined: Section 4)."""
