"""Jobs: ``reproman run`` and ``reproman jobs``, submitters and orchestrators."""
