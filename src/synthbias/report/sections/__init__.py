"""Report sections. Every module here is imported before a report is built and registers its
sections with :func:`synthbias.report.html.register_section`; add a module for a new run kind."""
