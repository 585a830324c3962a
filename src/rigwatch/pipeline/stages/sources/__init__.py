"""What the collector collects: cameras, an image-folder importer, DS18B20 temperatures and
the station's closed Parquet segments."""
