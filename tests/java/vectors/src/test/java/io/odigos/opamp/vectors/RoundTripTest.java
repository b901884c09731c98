package io.odigos.opamp.vectors;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import com.google.gson.JsonElement;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Every vector survives JSON -> bytes -> message -> JSON and bytes -> bytes unchanged with the
 * generated Java classes alone. The cargo harness runs it with ODIGOS_VECTORS_DIR set to
 * tests/vectors, on each protobuf-java version under test.
 */
class RoundTripTest {
  @Test
  void everyVectorRoundTrips() throws IOException {
    String dir = System.getenv("ODIGOS_VECTORS_DIR");
    assertNotNull(dir, "set ODIGOS_VECTORS_DIR to the tests/vectors folder");
    List<Path> paths;
    try (Stream<Path> files = Files.list(Path.of(dir))) {
      paths = files.filter(path -> path.toString().endsWith(".json")).sorted().toList();
    }
    assertFalse(paths.isEmpty(), "no vectors found in " + dir);
    // One check per vector, all run, so one failure does not hide the others.
    assertAll(paths.stream().map(RoundTripTest::roundTrip));
    System.out.println(
        "round-trip: " + paths.size() + " vectors, protobuf-java " + Codec.runtimeVersion());
  }

  private static Executable roundTrip(Path path) {
    return () -> {
      String name = path.getFileName().toString();
      Codec.Vector vector = Codec.readVector(path);
      byte[] wire = Codec.encode(vector.type(), vector.message());
      JsonElement decoded = Codec.decode(vector.type(), wire);
      assertEquals(vector.message(), decoded, name + ": decoded JSON differs from the vector");
      assertArrayEquals(
          wire, Codec.encode(vector.type(), decoded), name + ": re-encoding changed the bytes");
    };
  }
}
